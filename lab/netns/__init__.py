"""The namespace lab: declared topologies of network namespaces and scenarios with known drops.

``topology`` reads ``lab/topologies/*.toml``; ``build`` creates and removes the namespaces
(every object lives inside a ``pbl-`` namespace, so host interfaces are never touched);
``packets`` crafts frames; ``scenario`` declares the traffic and the drops a correct tool
must see; ``monitor`` runs any tool as ``pybpfasm TOOL --json``; ``runner`` judges the drop scenarios,
``workcase`` the tools' scripted workloads (``lab/workloads``); ``cases`` lists every tool's
case and ``demo`` runs them.
"""
