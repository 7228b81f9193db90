"""Who decides: the officials a role resolves to on a day, the delegations made through the API,
and the API's accounts.

Read in this order:

- `directory`: a role resolved to its officials through the plan's directory, following delegations;
- `delegations`: delegations made through the API, checked and audited;
- `accounts`: coordinators' and viewers' API accounts.
"""
