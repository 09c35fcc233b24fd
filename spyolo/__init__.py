"""spyolo: spiking object detection (SPYv4, LTC neurons, FPTT training)."""

__version__ = "0.1.0"
