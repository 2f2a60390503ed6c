"""Sends a realistic mix of events with Segment's Python SDK (segment-analytics-python), changed
only in its host. Used by tests/segment_sdks.rs.

usage: send_python.py HOST WRITE_KEY PREFIX COUNT [--gzip] [--clock-offset-days D]

Prints one JSON line per event sent ({"type", "userId", "messageId"}), then `flushed FAILED`
where FAILED counts the events the SDK reported as failed.
"""
import datetime as _dt
import json
import sys

import segment.analytics as analytics
import segment.analytics.client as _client
import segment.analytics.request as _request


def main():
    host, write_key, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rest = sys.argv[5:]
    offset_days = 0
    if "--clock-offset-days" in rest:
        offset_days = float(rest[rest.index("--clock-offset-days") + 1])
    if offset_days:
        # The device clock is off: every time the SDK reads (timestamp and sentAt) is shifted.
        shift = _dt.timedelta(days=offset_days)

        class ShiftedDatetime(_dt.datetime):
            @classmethod
            def now(cls, tz=None):
                # An instance of this class: the SDK checks timestamps with isinstance.
                return cls.fromtimestamp((_dt.datetime.now(tz) + shift).timestamp(), tz)

            @classmethod
            def utcnow(cls):
                return _dt.datetime.utcnow() + shift

        _client.datetime = ShiftedDatetime
        _request.datetime = ShiftedDatetime

    failed = []
    analytics.write_key = write_key
    analytics.host = host
    analytics.gzip = "--gzip" in rest
    analytics.max_retries = 3
    analytics.on_error = lambda error, items: failed.extend(items)

    for i in range(count):
        user = f"{prefix}-u-{i}"
        mid = f"{prefix}-m-{i}"
        email = f"{prefix}.{i}@example.com"
        kind = i % 6
        if kind == 0:
            analytics.track(user, "Order Completed",
                            {"order_id": f"{prefix}-o-{i}", "revenue": 19.9 + i, "currency": "USD",
                             "products": [{"product_id": "p-1", "price": 19.9, "quantity": 1}]},
                            context={"traits": {"email": email}, "ip": "203.0.113.7"},
                            message_id=mid)
            sent("track", user, mid)
        elif kind == 1:
            analytics.identify(user, {"email": email, "firstName": "Pat", "lastName": "Lee",
                                      "phone": "+1 555 0100"}, message_id=mid)
            sent("identify", user, mid)
        elif kind == 2:
            analytics.identify(user, {"vip_buyers": True, "email": email},
                               context={"personas": {"computation_key": "vip_buyers",
                                                     "computation_class": "audience",
                                                     "computation_id": "aud_1", "space_id": "spa_1"}},
                               message_id=mid)
            sent("identify", user, mid)
        elif kind == 3:
            analytics.page(user, "Shop", "Checkout", {"url": "https://shop.example/checkout"},
                           message_id=mid)
            sent("page", user, mid)
        elif kind == 4:
            if i % 12 == 4:
                analytics.screen(user, "App", "Cart", {"items": 2}, message_id=mid)
                sent("screen", user, mid)
            else:
                analytics.track(user, "Product Viewed", {"product_id": "p-2"}, message_id=mid)
                sent("track", user, mid)
        else:
            if i % 12 == 5:
                analytics.group(user, f"{prefix}-g", {"name": "Acme"}, message_id=mid)
                sent("group", user, mid)
            else:
                analytics.alias(f"{prefix}-anon-{i}", user, message_id=mid)
                sent("alias", user, mid)
    analytics.flush()
    analytics.shutdown()
    print(f"flushed {len(failed)}", flush=True)


def sent(kind, user, mid):
    print(json.dumps({"type": kind, "userId": user, "messageId": mid}), flush=True)


if __name__ == "__main__":
    main()
