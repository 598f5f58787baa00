"""Profiles: who every employee is, and whom they know."""
