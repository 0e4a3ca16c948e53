"""Run policies: hooks installed from the environment when a context is created.

A policy is a :class:`~toolkit.launcher.hooks.RunHook` that changes how a run goes (it
may rule that a component is read from the store or skipped, or name the metadata
store), and that must reach a process the installer does not control: an exported
notebook executed by papermill creates its own ``InteractiveContext`` in a kernel of its
own. So policies travel by name, through the environment, and every context loads them:

* the *standard* policies: each is asked every time and declines (its factory returns
  None) unless its own settings are in the environment, so a process given those
  settings alone (the pipeline step's ``TOOLKIT_ONLY_COMPONENT``) gets the policy; their
  modules are imported whenever a context is created, so they stay light;
* the policies ``$TOOLKIT_POLICIES`` names (comma-separated): a registered name, or
  ``module:factory`` for a policy this registry does not know.

A factory takes the environment (a mapping of variables) and returns a ``RunHook``, or
None when the environment does not ask for it. Registering a policy, as
papermill registers its engines, makes its name known: ``register_policy(name,
"module:factory")``. Unknown names stop the context with one line naming the known ones.
"""
from __future__ import annotations

import importlib
import os
from typing import Callable, Mapping

from toolkit import _env
from toolkit.errors import ToolkitError
from toolkit.launcher.hooks import RunHook

#: the variable naming the policies to install beyond the standard ones
POLICIES_ENV = _env.POLICIES

PolicyFactory = Callable[[Mapping[str, str]], "RunHook | None"]


class PolicyRegistry:
    """Named policy factories, each as ``"module:factory"`` (imported when first used, so
    registering costs no import) or as a callable."""

    def __init__(self) -> None:
        self._factories: dict[str, str | PolicyFactory] = {}
        self._standard: list[str] = []

    def register(self, name: str, factory: str | PolicyFactory, standard: bool = False) -> None:
        """Make ``name`` known; a ``standard`` policy is asked in every context."""
        self._factories[name] = factory
        if standard and name not in self._standard:
            self._standard.append(name)

    def known(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> PolicyFactory:
        """The factory registered as ``name``, or the one ``name`` spells as
        ``module:factory``; a one-line :class:`ToolkitError` naming the known ones else."""
        factory = self._factories.get(name, name)
        if callable(factory):
            return factory
        module_name, _, attribute = factory.partition(":")
        if not attribute:
            raise self._unknown(name, "no such policy")
        try:
            loaded = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise self._unknown(name, f"cannot load {factory}: {exc}") from None
        if not callable(loaded):
            raise self._unknown(name, f"{factory} is not a function")
        return loaded

    def load(self, environ: Mapping[str, str] | None = None) -> list[RunHook]:
        """The policies to install now: the standard ones that apply, then those
        ``$TOOLKIT_POLICIES`` names, each once."""
        env = os.environ if environ is None else environ
        named = [n.strip() for n in env.get(POLICIES_ENV, "").split(",") if n.strip()]
        policies = []
        for name in dict.fromkeys([*self._standard, *named]):
            policy = self.get(name)(env)
            if policy is not None:
                policies.append(policy)
        return policies

    def _unknown(self, name: str, why: str) -> ToolkitError:
        return ToolkitError(f"{POLICIES_ENV}: unknown run policy {name!r} ({why}); known: "
                            f"{', '.join(self.known()) or 'none'}, or give module:factory")


#: the registry every context loads its policies from
POLICIES = PolicyRegistry()
register_policy = POLICIES.register
load_policies = POLICIES.load

# A step of a compiled Kubeflow Pipelines pipeline runs its exported notebook with its
# component named in the environment; the policy lives with the step's entry point.
register_policy("pipeline-step", "toolkit.exporter.kfp_task:step_policy", standard=True)
