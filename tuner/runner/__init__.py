"""Running one candidate in an isolated process and turning what happened into a record."""
