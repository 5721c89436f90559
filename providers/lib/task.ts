// The shape every built-in's `execute` shares: parse the task JSON, run, and
// return the result<string, string>. `run` answers "O" + the ok JSON or
// "E" + the error message.
import { liftString, returnResult } from './abi';
import { JValue, Kind, Parser } from './json';

export function executeTask(ptr: usize, len: usize, run: (task: JValue) => string): usize {
  const p = new Parser(liftString(ptr, len));
  const task = p.document();
  if (task == null || task.kind != Kind.Obj) return returnResult(false, 'invalid_task: the task is not a JSON object (' + p.error + ')');
  const out = run(task);
  return returnResult(out.charCodeAt(0) == 79, out.substring(1));
}
