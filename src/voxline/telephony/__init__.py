"""Telephony: Twilio's webhooks, TwiML, signatures and the Media Streams WebSocket protocol."""
