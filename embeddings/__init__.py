"""The governed knowledge index: vector store, schema docs, analyst intent, governance metadata."""
