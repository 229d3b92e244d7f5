"""The guard's rules, one per module; `governance.sqlguard.guard.RULES` runs them in order."""
