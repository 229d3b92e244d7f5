from registry.schemas.base import ApiModel, Page
from registry.schemas.serverjson import BASTION_META, OFFICIAL_META, SCHEMA_URL, ServerJson
from registry.schemas.tools import ToolDefinition

__all__ = ["BASTION_META", "OFFICIAL_META", "SCHEMA_URL", "ApiModel", "Page", "ServerJson", "ToolDefinition"]
