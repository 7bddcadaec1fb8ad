"""chatwire: a chat-completion gateway."""

__version__ = "0.1.0"
