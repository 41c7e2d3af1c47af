#!/usr/bin/env python3
"""grafana-dashboard.py — writes docs/grafana/cascade.json, the Grafana
dashboard over cascade's GET /metrics (docs/api.md lists the metrics).

    python3 scripts/grafana-dashboard.py > docs/grafana/cascade.json

The panels are the table below; tests/peers/test_metrics.sh checks that every
metric a query names is in the endpoint's output. Import the file in Grafana
(Dashboards > Import) and pick the Prometheus data source that scrapes cascade.
"""
import json

R = "[$__rate_interval]"


def q(p, what, rng=R):
    """histogram_quantile p of a histogram family (optionally filtered)."""
    return "histogram_quantile(%s, sum by (le) (rate(%s%s)))" % (p, what, rng)


# (title, unit, [(expr, legend)], description)
PANELS = [
    ("SIP requests in, by method", "reqps",
     [("sum by (method) (rate(cascade_sip_requests_in_total{instance=~\"$instance\"}%s))" % R, "{{method}}")],
     "SIP requests received per second"),
    ("SIP responses out, by code", "reqps",
     [("sum by (code) (rate(cascade_sip_responses_out_total{instance=~\"$instance\"}%s))" % R, "{{code}}")],
     "SIP responses sent per second"),
    ("REGISTER handling time", "s",
     [(q(0.5, 'cascade_sip_handling_seconds_bucket{method="REGISTER",instance=~"$instance"}'), "p50"),
      (q(0.99, 'cascade_sip_handling_seconds_bucket{method="REGISTER",instance=~"$instance"}'), "p99")],
     "REGISTER received to our first final response sent"),
    ("INVITE handling time", "s",
     [(q(0.5, 'cascade_sip_handling_seconds_bucket{method="INVITE",instance=~"$instance"}'), "p50"),
      (q(0.99, 'cascade_sip_handling_seconds_bucket{method="INVITE",instance=~"$instance"}'), "p99")],
     "INVITE received to our first final response sent (a proxied call: the callee's answer, ringing included)"),
    ("Event loop lag", "s",
     [(q(0.99, 'cascade_loop_lag_seconds_bucket{instance=~"$instance"}'), "p99"),
      ("cascade_loop_lag_ms{instance=~\"$instance\"} / 1000", "last sample")],
     "How late the 100 ms sampler fires"),
    ("Store commit time", "s",
     [(q(0.5, 'cascade_store_commit_seconds_bucket{instance=~"$instance"}'), "p50"),
      (q(0.99, 'cascade_store_commit_seconds_bucket{instance=~"$instance"}'), "p99")],
     "One SQLite batch transaction: BEGIN, the ops, COMMIT"),
    ("Store commits", "ops",
     [("rate(cascade_store_commit_seconds_count{instance=~\"$instance\"}%s)" % R, "batches/s"),
      ("cascade_overload_store_backlog{instance=~\"$instance\"}", "backlog")],
     "Batches committed per second, and ops waiting"),
    ("Media forwarding delay", "s",
     [(q(0.5, 'cascade_media_forward_delay_seconds_bucket{instance=~"$instance"}'), "p50"),
      (q(0.99, 'cascade_media_forward_delay_seconds_bucket{instance=~"$instance"}'), "p99")],
     "SFU: packet in on the media port to the sendmmsg that sent it"),
    ("REGISTER outcomes", "reqps",
     [("sum by (result) (rate(cascade_register_answers_total{instance=~\"$instance\"}%s))" % R, "{{result}}")],
     ""),
    ("Registrations", "short",
     [("cascade_bindings{instance=~\"$instance\"}", "bindings"),
      ("cascade_registered_aors{instance=~\"$instance\"}", "AoRs"),
      ("cascade_users{instance=~\"$instance\"}", "users")],
     ""),
    ("Transactions", "short",
     [("cascade_server_transactions{instance=~\"$instance\"}", "server"),
      ("cascade_client_transactions{instance=~\"$instance\"}", "client"),
      ("rate(cascade_transactions_retransmissions_sent_total{instance=~\"$instance\"}%s)" % R, "retransmissions/s"),
      ("rate(cascade_transactions_timeouts_total{instance=~\"$instance\"}%s)" % R, "timeouts/s")],
     ""),
    ("SIP connections", "short",
     [("cascade_sip_connections{instance=~\"$instance\"}", "{{transport}}")],
     "Open TCP, TLS, WS and WSS connections"),
    ("Overload", "short",
     [("rate(cascade_overload_refused_total{instance=~\"$instance\"}%s)" % R, "refused/s"),
      ("cascade_overload_loop_busy_pct{instance=~\"$instance\"}", "loop busy %"),
      ("cascade_overload_loop_overloaded{instance=~\"$instance\"}", "overloaded")],
     "New REGISTERs refused with 503, and what overload control looks at"),
    ("Bad input", "pps",
     [("rate(cascade_transport_parse_errors_total{instance=~\"$instance\"}%s)" % R, "parse errors/s"),
      ("rate(cascade_bad_requests_total{instance=~\"$instance\"}%s)" % R, "bad requests/s"),
      ("rate(cascade_transport_dropped_total{instance=~\"$instance\"}%s)" % R, "dropped/s")],
     ""),
    ("Proxy", "short",
     [("cascade_proxy_calls_live{instance=~\"$instance\"}", "calls"),
      ("rate(cascade_proxy_forwarded_total{instance=~\"$instance\"}%s)" % R, "forwarded/s")],
     ""),
    ("GB/T 28181", "short",
     [("cascade_gb_devices_online{instance=~\"$instance\"}", "devices online"),
      ("cascade_gb_streams{instance=~\"$instance\"}", "live streams"),
      ("cascade_gb_lower_registered{instance=~\"$instance\"}", "uppers registered to")],
     ""),
    ("Media (SFU)", "short",
     [("cascade_media_rooms{instance=~\"$instance\"}", "rooms"),
      ("cascade_media_participants{instance=~\"$instance\"}", "participants"),
      ("rate(cascade_media_rtp_forwarded_total{instance=~\"$instance\"}%s)" % R, "RTP out/s")],
     ""),
    ("HTTP API", "short",
     [("sum by (class) (rate(cascade_api_responses_total{instance=~\"$instance\"}%s))" % R, "{{class}}/s"),
      ("cascade_api_ws_clients{instance=~\"$instance\"}", "event-stream clients")],
     ""),
]


def panel(i, title, unit, targets, desc):
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(65 + k), "expr": e, "legendFormat": leg,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for k, (e, leg) in enumerate(targets)],
    }


dashboard = {
    "title": "cascade",
    "uid": "cascade-overview",
    "description": "cascade SIP / GB28181 / WebRTC node: traffic, latency histograms, store, media",
    "tags": ["cascade", "sip"],
    "timezone": "utc",
    "schemaVersion": 38,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "instance", "type": "query", "label": "Instance", "includeAll": True, "multi": True,
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": "label_values(cascade_sip_requests_in_total, instance)", "refresh": 2},
    ]},
    "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
}

print(json.dumps(dashboard, indent=2))
