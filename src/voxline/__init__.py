"""Voxline: answers Twilio phone calls with a real-time voice AI agent."""

__version__ = "0.1.0"
