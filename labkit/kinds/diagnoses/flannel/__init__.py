"""Why flannel does not work on a node: facts gathered in one remote command, then named findings.

The facts are what a trainer would look at by hand: flanneld.conf, the network config through the etcd v2 and
v3 APIs (against the endpoint flanneld.conf names), the node's IPv4 addresses and default route, the CNI
plugins and confs, the kubelet's version and flags, and flanneld's unit state and journal. Every fact is
optional: a binary absent on the node (flanneld, kubelet, etcdctl) leaves it unknown and raises nothing, except
flanneld's own when its unit is not running: that absence is what ``flanneld-not-installed`` names. systemd's
state says which of not installed, not started (inactive, 0 restarts), exited (failed, 0 restarts) and
restarting (restarts seen) a flanneld that is not running is.

Background (course.md, "Facts the flannel stage must get right"):
- flannel <= 0.17 reads its config through the etcd v2 API only, 0.18+ through v3; the two key spaces are
  separate. etcd 3.4 turned v2 off by default (``--enable-v2=true``), and ``ETCDCTL_API=2 etcdctl`` then says
  "client: response is invalid json".
- A hostname in ``-etcd-endpoints`` works only where it resolves to etcd's IP. Seen with flanneld 0.13.0 built
  from source on the flannel lab: a name in every node's /etc/hosts works; Vagrant's own 127.0.X.1 mapping makes
  flanneld dial this node's loopback ("connection refused"); an unknown name logs "lookup NAME on [::1]:53"; in
  both cases flanneld stays active and retries every second. Release builds (static cgo) can also crash in
  glibc's resolver (flannel-io/flannel#977).
- On Vagrant VMs the first NIC is the NAT/management one, alike on every VM: without ``-iface`` naming the
  lab NIC every node announces the same public IP.
- The flannel CNI plugin delegates to ``bridge`` and ``host-local``; ``loopback`` is needed too.
- kubelet lost ``--network-plugin``/``--cni-*`` with dockershim in 1.24.

The package, by job: :mod:`.script` is the facts script the node runs, :mod:`.parsing` turns its output into
:class:`Facts` (:mod:`.facts`), :mod:`.findings` is the table of findings with their texts, the ``*_rules``
modules raise them from the facts and :class:`Expectations`, and :mod:`.diagnosis` puts the rules in order.
"""

from __future__ import annotations

from labkit.kinds.diagnoses.flannel.diagnosis import diagnose, summary
from labkit.kinds.diagnoses.flannel.expectations import Expectations, version_tuple
from labkit.kinds.diagnoses.flannel.facts import Facts
from labkit.kinds.diagnoses.flannel.findings import SPECS
from labkit.kinds.diagnoses.flannel.parsing import parse_facts, parse_flags
from labkit.kinds.diagnoses.flannel.script import facts_script

__all__ = [
    "SPECS",
    "Expectations",
    "Facts",
    "diagnose",
    "facts_script",
    "parse_facts",
    "parse_flags",
    "summary",
    "version_tuple",
]
