"""Stream FMNIST (Fig. 4a stream): one dataset cut into parts learned one after another."""
