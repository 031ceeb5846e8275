#!/bin/sh
# Bundles src/ into dist/.
mkdir -p dist && cat src/*.js > dist/todo.js
