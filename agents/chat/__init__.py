"""The chat agent engineers talk to: tools only through the gateway, as the user (see agent.py)."""
