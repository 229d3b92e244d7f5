from registry.auth.principals import authenticate, bearer_token, principal_from_claims, roles_for_groups
from registry.auth.tokens import TokenVerifier, mint_token

__all__ = ["TokenVerifier", "authenticate", "bearer_token", "mint_token", "principal_from_claims", "roles_for_groups"]
