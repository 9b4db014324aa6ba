"""Pure models and logic. Never touches a socket, a file, a database, the clock or `random`."""
