"""faced: on-device face recognition appliance."""

__version__ = "0.1.0"
