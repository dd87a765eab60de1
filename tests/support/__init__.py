"""Helpers the tests share: real services started on free loopback ports."""
