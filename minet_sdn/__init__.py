"""minet-sdn: a mini-Internet of real routers across many servers, run as one."""
__version__ = "0.1.0"
