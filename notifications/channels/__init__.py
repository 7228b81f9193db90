"""The channels an official is reached on besides, or instead of, email: one interface
(`base.Channel`), and an adapter per provider: Zalo's notification service (`zns`, with its
OA token in `zalo_token`), SMS through eSMS.vn (`esms`, the shape a SpeedSMS or a province's
own gateway would take too) and email itself (`email`). What each kind of message says on
ZNS and by SMS is `notifications/templates/channels.yaml` (`templates`).

Nothing here queues or decides: the outbox sends through a `Channel` and reads back its
`Delivery` (sent, retryable, permanent) to retry or fall back to the official's next channel.
"""
