"""From a deployed environment to hardened, verified hosts: pulumi, inventory, harden, verify."""
