"""The complaint desk: a chat bot that handles a shop's complaints the way good shops do."""
