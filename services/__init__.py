"""Watercooler's services, one folder each:

    <service>/domainmodel.py   aggregates; their decorated methods are the events they record
    <service>/application.py   commands (load, call, save) and queries; raises domain errors
    <service>/servicer.py      gRPC: translates messages and nothing more
    <service>/main.py          the process: `python -m services.<service>`

search/ owns the read side: projections/ (faust processors writing Elasticsearch) and the
search RPCs that read them.
"""
