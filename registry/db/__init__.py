from registry.db.engine import Database, create_db_engine
from registry.db.migrate import upgrade

__all__ = ["Database", "create_db_engine", "upgrade"]
