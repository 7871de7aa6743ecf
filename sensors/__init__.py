"""Sensors: events that launch runs (new files in the landing zone)."""
