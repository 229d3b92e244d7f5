"""Layer 2: priors — what is known about parameters before looking at any site.

Tracking and session parameters never change what a page shows, so they are dropped everywhere;
e-commerce platforms have parameters that always do, so they are kept on those platforms even
when a learned map (or its absence) would say otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Click ids, campaign tags and analytics hand-offs (lower-cased names).
TRACKING_PARAMS = frozenset(
    {
        "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "twclid", "ttclid",
        "li_fat_id", "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "hsctatracking",
        "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "rb_clickid", "s_cid", "_openstat",
        "wickedid", "srsltid", "epik", "sc_cid", "trk", "trkcampaign", "cmpid", "ncid", "spm", "_branch_match_id",
        "irclickid", "cjevent", "zanpid", "awc", "ef_id", "obclid", "tblci", "scid", "rdt_cid", "gad_source",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "matomo_", "ga_")
# Server-side session tokens in the query string.
SESSION_PARAMS = frozenset(
    {"jsessionid", "phpsessid", "aspsessionid", "sessionid", "session_id", "cfid", "cftoken", "sid_token"}
)
# `;jsessionid=…` path parameters (Java servlet URL rewriting).
SESSION_PATH_PARAM = re.compile(r";(?:jsessionid|phpsessid|sessionid)=[^/?#;]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    host_suffixes: tuple[str, ...]
    path_markers: tuple[str, ...]
    params: frozenset[str]
    param_patterns: tuple[re.Pattern[str], ...] = ()

    def keeps(self, name: str) -> bool:
        return name in self.params or any(p.fullmatch(name) for p in self.param_patterns)


PLATFORMS = (
    Platform(
        "shopify",
        host_suffixes=(".myshopify.com",),
        path_markers=("/products/", "/collections/"),
        params=frozenset({"variant", "page", "q", "sort_by", "type", "options"}),
        param_patterns=(re.compile(r"filter\..+"),),
    ),
    Platform(
        "salesforce-commerce-cloud",
        host_suffixes=(".demandware.net", ".commercecloud.salesforce.com"),
        path_markers=("/on/demandware.store/",),
        params=frozenset({"start", "sz", "cgid", "pid", "q", "srule", "pmin", "pmax", "dwvar", "format"}),
        param_patterns=(re.compile(r"pref[nv]\d+"), re.compile(r"dwvar_.+")),
    ),
)
PLATFORMS_BY_NAME = {p.name: p for p in PLATFORMS}


def tracking_reason(name: str) -> str | None:
    """Why the prior drops `name`, or None when it has no opinion."""
    lowered = name.lower()
    if lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES):
        return "known tracking parameter"
    if lowered in SESSION_PARAMS:
        return "known session token"
    return None


def platforms_for(host: str, path: str, configured: dict[str, str]) -> list[Platform]:
    """Platforms this URL is served by: configured hosts, platform host suffixes, path markers."""
    found: list[Platform] = []
    name = configured.get(host)
    if name is not None and name in PLATFORMS_BY_NAME:
        found.append(PLATFORMS_BY_NAME[name])
    for platform in PLATFORMS:
        if platform in found:
            continue
        if host.endswith(platform.host_suffixes) or any(m in path for m in platform.path_markers):
            found.append(platform)
    return found
