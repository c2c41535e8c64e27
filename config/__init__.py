"""The bottom of the tree: the one `Settings` and the one logging configuration.

Every other module gets its configuration from here or as an argument; nothing
else reads the environment."""
