import { spawn, type ChildProcess } from "node:child_process";

/**
 * Ends a long-lived child of a test (redis-server, `diffuse serve`, `diffuse worker`) when the test process itself
 * dies without cleaning up: killed with vitest (SIGKILL, a timeout), or a crash. A test's afterAll kills its children;
 * but nothing of the test runs after a SIGKILL, and an orphaned service goes on for ever (a worker whose Redis had
 * gone was found still running half an hour later).
 *
 * The guard is a shell that holds the read end of a pipe from this process and kills the child when the pipe
 * closes, which the kernel does when this process ends, however it ends. It is itself ended as soon as the child
 * exits, so that it never kills a process id the system has given to another process since.
 */
export function guardChild(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  const guard = spawn("/bin/sh", ["-c", `cat >/dev/null; kill -9 ${pid} 2>/dev/null`], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  // Not a reason for this process to stay alive, nor an error if it is gone first.
  guard.stdin!.on("error", () => undefined);
  (guard.stdin as unknown as { unref?: () => void }).unref?.();
  guard.unref();
  const release = () => {
    if (guard.exitCode === null && guard.signalCode === null) guard.kill("SIGKILL");
  };
  if (child.exitCode !== null || child.signalCode !== null) release();
  else child.once("exit", release);
}
