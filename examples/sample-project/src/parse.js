export function parse(line) {
  const done = line.startsWith('x ');
  return { text: done ? line.slice(2) : line, done };
}
