"""The types readers look for, by what they describe: `api` (what the API takes, answers and
streams), `record` (what a deliberation produced), `scoring` (how a proposal scored). Messages
between actors are in `fleet.messages`; what callers configure is in `fleet.config`."""
