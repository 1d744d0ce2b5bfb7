"""Test clocks: customers living on a frozen time that is moved forward on request."""
