"""Core components shared by most methods (each module imports torch; this package does not)."""
