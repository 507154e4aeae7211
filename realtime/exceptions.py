class NotFound(Exception):
    """No such object for this tenant (whether or not another tenant has one)."""


class Invalid(Exception):
    """The request is well-formed JSON but its values are not acceptable."""
