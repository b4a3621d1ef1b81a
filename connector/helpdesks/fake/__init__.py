"""The fake helpdesk's adapter and webhook receiver (the server is ``connector.sandbox``)."""

from connector.helpdesks.fake.adapter import FakeAdapter
from connector.helpdesks.fake.receiver import FakeReceiver

__all__ = ["FakeAdapter", "FakeReceiver"]
