"""Reading an official's emailed reply: pure functions over a parsed message, with no database and no network.

A caller that receives a reply (parsed with `email.policy.default`) asks, in this order:
`automatic.automatic_reason` (an out-of-office, a bounce, a list: drop it, and answer nothing);
`authentication.authenticate` (did the trusted receiving host see DKIM or DMARC pass for the From domain);
`quotes.reply_text` (the reply's own text, without the quoted email, the attribution or the signature);
and `answers.read_answer` (the decision on its first line, and the comment). The gates on the reply
address's token, the step still open and the From address being the approver's come first.

`applying.apply_reply` is the one module here that touches the database: it runs every gate in the
issue's order for one received message, applies its decision through the page's own decision code
(`approvals.routing.decisions.decide` with the reply token) and records the message once
(`inbound_reply`, by its Message-ID), answering a sender whose reply was not applied.
"""
