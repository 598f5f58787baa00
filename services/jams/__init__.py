"""The jams service."""
