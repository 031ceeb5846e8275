import { parse } from './parse.js';

const items = [];

export function add(line) {
  const item = parse(line);
  items.push(item);
  return item;
}

export function list() {
  return items.map((item, i) => `${i + 1}. ${item.done ? '[x]' : '[ ]'} ${item.text}`).join('\n');
}
