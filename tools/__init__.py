"""Governed MCP servers shipped with Bastion, each a pure library plus a thin MCP server."""
