"""AWS Lambda without AWS: function-URL events signed like Slack's, and an in-process Lambda client.

Bolt's ``LambdaLazyListenerRunner`` starts a lazy listener with
``lambda_client.invoke(FunctionName=..., InvocationType="Event", Payload=json)``.
:class:`InProcessLambda` records those calls and, on :meth:`InProcessLambda.drain`, runs each
payload through the handler, as Lambda would in another invocation after the ack returned.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.slack_signing import event_body, interactive_body, signed_request

FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:ideabot"


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that Bolt and the handler read."""

    function_name: str = "ideabot"
    invoked_function_arn: str = FUNCTION_ARN
    memory_limit_in_mb: int = 1024
    remaining_ms: int = 60_000
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Invocation:
    function_name: str
    invocation_type: str
    event: dict[str, Any]


@dataclass
class InProcessLambda:
    """A Lambda client whose asynchronous invocations run in this process when drained."""

    handler: Callable[[dict[str, Any], Any], Any] | None = None
    invocations: list[Invocation] = field(default_factory=list)
    pending: list[Invocation] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    def invoke(
        self, FunctionName: str, InvocationType: str = "RequestResponse", Payload: str = "{}"
    ) -> dict[str, Any]:
        inv = Invocation(FunctionName, InvocationType, json.loads(Payload))
        self.invocations.append(inv)
        self.pending.append(inv)
        return {"StatusCode": 202 if InvocationType == "Event" else 200}

    def drain(self, context: Any | None = None) -> list[Any]:
        """Runs the queued invocations (and any they queue) through the handler, in order."""
        assert self.handler is not None
        out = []
        while self.pending:
            inv = self.pending.pop(0)
            result = self.handler(inv.event, context or LambdaContext())
            self.results.append(result)
            out.append(result)
        return out


def function_url_event(
    body: str,
    headers: dict[str, str],
    *,
    method: str = "POST",
    base64_body: bool = False,
) -> dict[str, Any]:
    """A Lambda function URL request (payload format 2.0) with *body* and *headers*."""
    now = int(time.time() * 1000)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        # Function URLs give header names in lower case.
        "headers": {
            **{k.lower(): v for k, v in headers.items()},
            "host": "abcdefgh.lambda-url.eu-west-1.on.aws",
            "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefgh",
            "domainName": "abcdefgh.lambda-url.eu-west-1.on.aws",
            "http": {
                "method": method,
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Slackbot 1.0",
            },
            "requestId": f"r-{now}",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2030:00:00:00 +0000",
            "timeEpoch": now,
        },
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        "isBase64Encoded": base64_body,
    }


def signed_event(
    payload: dict[str, Any], secret: str, event_id: str = "Ev1", **kwargs: Any
) -> dict[str, Any]:
    """An Events API callback around *payload*, signed, as a function URL event."""
    body = event_body(payload, event_id=event_id)
    return function_url_event(body, signed_request(secret, body), **kwargs)


def signed_interactive(payload: dict[str, Any], secret: str) -> dict[str, Any]:
    """An interactivity request (a shortcut, a button), signed, as a function URL event."""
    body = interactive_body(payload)
    headers = signed_request(secret, body, content_type="application/x-www-form-urlencoded")
    return function_url_event(body, headers)


def scheduled_event(job: str, **detail: Any) -> dict[str, Any]:
    """What the EventBridge schedules in template.yaml deliver."""
    return {
        "version": "0",
        "id": "0d8b3f6e-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2030-01-02T16:30:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"job": job, **detail},
    }
