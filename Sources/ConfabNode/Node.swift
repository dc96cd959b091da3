import ConfabWire
