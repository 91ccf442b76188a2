"""The ``kaniko-kubernetes`` builder: kaniko as a Kubernetes Job, for an agent with no Docker engine
(e.g. one running in the cluster). Everything but where kaniko runs is the ``kaniko`` builder's: the
context goes to ``builder.build_context_store`` (gs://…) as a tar.gz, the executor gets the same
arguments (``builders.kaniko.executor_args``), an image already in the registry is not built again.

The Job is ``launch-build-<hash of the image URI>`` in the kubeconfig context's namespace (in a pod:
its own), so a build already started for the same image is followed rather than started twice. The
executor pushes with the pod's own registry credentials (Workload Identity on GKE, IRSA on EKS, or a
docker config the namespace provides); none pass through the agent.
"""

from __future__ import annotations

import hashlib
import time

from ..._extras import require_extra
from ...builders.kaniko import KanikoBuilder
from ...core.errors import BuildError
from . import KubernetesRunner, _dispatch_error, _status

BUILD_DEADLINE_SECONDS = 3600
_FIRST_POLL, _MAX_POLL = 0.5, 10.0


class KanikoKubernetesBuilder(KanikoBuilder):
    """Uploads the context to Cloud Storage and runs the kaniko executor as a Kubernetes Job."""

    type = "kaniko-kubernetes"
    pushes = True

    def preflight(self) -> None:
        """The kaniko builder's settings, and a cluster to run the Job in."""
        super().preflight()
        KubernetesRunner()._api({})

    def require_sdk(self) -> None:
        """The kubernetes client, and Cloud Storage for the context (it comes with the kaniko extra)."""
        require_extra("kubernetes", "the kaniko-kubernetes builder")
        require_extra("kaniko", "the kaniko-kubernetes builder")

    def _run_build(self, project: str, args: list[str], uri: str, log, stop) -> None:
        from kubernetes import client  # lazy

        runner = KubernetesRunner()
        batch, core = runner._api({})
        namespace = runner._namespace({})
        name = f"launch-build-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"
        job = client.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=client.V1ObjectMeta(name=name, labels={"launch-build": name}),
            spec=client.V1JobSpec(
                backoff_limit=0,
                active_deadline_seconds=BUILD_DEADLINE_SECONDS,
                ttl_seconds_after_finished=86400,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"launch-build": "kaniko", "job-name": name}),
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[client.V1Container(name="kaniko", image=self.config.kaniko_image, args=args)],
                    ),
                ),
            ),
        )
        try:
            batch.create_namespaced_job(namespace, job, _request_timeout=60)
            self.builds += 1
            log(f"kaniko Job {namespace}/{name} started for {uri}")
        except Exception as err:
            if _status(err) != 409:
                raise BuildError(
                    f"cannot start the kaniko Job for {uri}: {_dispatch_error(err, 'create the Job')}"
                ) from None
            log(f"kaniko Job {namespace}/{name} is already building {uri}; following it")
        self.last_build_id = name
        ended = self._wait(batch, namespace, name, uri, stop)
        lines = self._log_lines(core, namespace, name)
        for line in lines:
            log(line)
        if ended != "Complete":
            tail = "\n".join(lines[-10:]) or "no log"
            raise BuildError(f"kaniko Job {namespace}/{name} for {uri} ended {ended}:\n{tail}")
        log(f"kaniko Job {name}: SUCCESS")

    def _wait(self, batch, namespace: str, name: str, uri: str, stop) -> str:
        """Read the build Job until it ends, ``stop`` is set (the agent stops or lost the run:
        BuildStopped) or the kaniko builder's ``wait_timeout`` passes (BuildError)."""
        from ...builders.kaniko import BuildStopped

        delay = _FIRST_POLL
        deadline = time.monotonic() + self.wait_timeout
        while True:
            if stop.is_set():
                raise BuildStopped(f"stopped waiting for the kaniko Job {namespace}/{name} (it goes on in the cluster)")
            try:  # a list by label, as the runner reads its Jobs
                found = batch.list_namespaced_job(
                    namespace, label_selector=f"launch-build={name}", _request_timeout=60
                ).items
            except Exception as err:
                raise BuildError(
                    f"cannot read the kaniko Job for {uri}: {_dispatch_error(err, 'read the Job')}"
                ) from None
            if not found:
                return "Deleted"
            job = found[0]
            for condition in (job.status.conditions if job.status else None) or []:
                if condition.status == "True" and condition.type in ("Complete", "Failed"):
                    return condition.type if condition.type == "Complete" else f"Failed ({condition.reason})"
            if time.monotonic() + delay > deadline:
                raise BuildError(
                    f"the kaniko Job {namespace}/{name} for {uri} did not finish within {self.wait_timeout:.0f} s"
                )
            stop.wait(delay)
            delay = min(delay * 2, _MAX_POLL)

    def _log_lines(self, core, namespace: str, name: str) -> list[str]:
        try:
            pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}", _request_timeout=60).items
            if not pods:
                return []
            text = core.read_namespaced_pod_log(pods[-1].metadata.name, namespace, _request_timeout=60)
        except Exception:  # the log is a courtesy; the Job's condition is the answer
            return []
        return [line for line in str(text or "").splitlines() if line.strip()]
