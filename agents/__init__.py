"""Agents that use the gateway's tools (Text-to-SQL, engineering chat agents)."""
