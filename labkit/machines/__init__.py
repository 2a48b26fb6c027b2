"""The machine layer: a libvirt host as a value, lab domains and networks, snapshot sets, guest set-up, keys, SSH to nodes, and the vagrant-libvirt provider."""
