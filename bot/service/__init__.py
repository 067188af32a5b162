"""The use cases: each takes typed input, works on ports only, and returns a typed result.

- ``triage``: analyse a post and find similar tickets (the verdict, no side effects)
- ``receive_post``: an idea post arrives: record it, triage it, answer in its thread
- ``file_message``: someone asks to file a message (emoji, button, shortcut, /idea): access,
  the post, the duplicate question, then the exactly-once filing of ``filing``
- ``filing``: the outbox engine that files (or comments) once per message, with retries
- ``run_digest``: the meeting and takeaway digests, posted once per (digest, channel, day)
- ``sync_jira``: Jira's issues into the ticket index, incrementally
- ``catalogue``: the ticket index for the batch command line (index, similar)

``bot.bootstrap`` builds them all; entry points (Slack listeners, scheduler, CLI) only call them.
"""
