"""callmeter: pay-per-minute video calls billed by the server's clock alone."""

__version__ = "0.1.0"
