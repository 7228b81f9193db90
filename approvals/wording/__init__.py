"""What people read, as data: a step as a person is shown it, and the plan's emails (queued by
`notifications.emails`).

- `presentation`: a step's names, due time and what earlier stages sent, in a person's language;
- `message_types`: an email as data (its kind, recipient, language, context);
- `messages`: who gets which email, in which language, with what in it;
- `reply_answers`: the answer to an emailed reply that was not applied.
"""
