"""Channels: provider plugins (SMTP, Twilio SMS, WhatsApp Cloud API, web push, FCM, signed
webhooks) behind the `ChannelProvider` port, with failover and per-provider rate limits,
templates, link tracking and the guarded outbound HTTP client. Providers never decide whether
to send: the consent gate in `legato.domain.delivery` does, before they are called.
"""
