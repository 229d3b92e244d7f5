"""Bastion's server-author SDK: know who is calling an MCP server behind the Bastion gateway, and say who may.

    from mcp.server.mcpserver import MCPServer
    from bastion_sdk import BastionIdentity, authorize_tool, current_caller

    server = MCPServer("dev.acme/presto")
    BastionIdentity(issuer="https://bastion.example.com", audience="dev.acme/presto").install(server)

    @server.tool()
    @authorize_tool(groups=["ads-eng"])
    def get_revenue_metrics(day: str) -> str:
        return f"{day}: for {current_caller().subject}"

The same decorator and `current_caller()` work in the gateway's in-process builtin servers, where the gateway
sets the caller directly.
"""

from bastion_sdk.caller import Caller, authorize_tool, current_caller, require_caller
from bastion_sdk.verify import AssertionRejected, BastionIdentity

__all__ = ["AssertionRejected", "BastionIdentity", "Caller", "authorize_tool", "current_caller", "require_caller"]
