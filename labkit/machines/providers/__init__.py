"""Providers bring VMs up and down. Only ``vagrant_libvirt`` exists; nothing else in labkit talks to vagrant."""
