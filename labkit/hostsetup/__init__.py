"""This host: host mode (labkit's own libvirtd in a network namespace), the local box build, the accelerator choice, doctor."""
