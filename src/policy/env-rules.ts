// Environment variables that change what programs load or run before any command is seen.

const dangerousNames = new Set([
  'BASH_ENV', 'ENV', 'PROMPT_COMMAND', 'PS4', 'SHELLOPTS', 'BASHOPTS', 'IFS', 'CDPATH', 'GLOBIGNORE', 'BASH_XTRACEFD',
  'GCONV_PATH', 'GLIBC_TUNABLES', 'LOCPATH', 'NLSPATH', 'HOSTALIASES', 'RESOLV_HOST_CONF', 'MALLOC_CHECK_', 'MALLOC_TRACE',
  'NODE_OPTIONS', 'NODE_PATH', 'NODE_REPL_EXTERNAL_MODULE',
  'PYTHONSTARTUP', 'PYTHONPATH', 'PYTHONHOME', 'PYTHONINSPECT', 'PYTHONUSERBASE', 'PYTHONBREAKPOINT',
  'PERL5OPT', 'PERL5LIB', 'PERLLIB', 'PERL5DB', 'PERL_MB_OPT', 'RUBYOPT', 'RUBYLIB',
  'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'JDK_JAVA_OPTIONS', 'CLASSPATH',
  'GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_EXEC_PATH', 'GIT_ASKPASS', 'SSH_ASKPASS', 'GIT_CONFIG', 'GIT_CONFIG_GLOBAL', 'GIT_CONFIG_SYSTEM',
  'GIT_CONFIG_COUNT', 'GIT_TEMPLATE_DIR', 'GIT_PROXY_COMMAND', 'GIT_EXTERNAL_DIFF', 'GIT_PAGER', 'GIT_EDITOR',
  'LESSOPEN', 'LESSCLOSE', 'PAGER', 'EDITOR', 'VISUAL', 'MANPAGER', 'BROWSER',
  'OPENSSL_CONF', 'OPENSSL_ENGINES', 'ZDOTDIR',
]);

const dangerousPrefixes = ['LD_', 'DYLD_', 'BASH_FUNC_', 'GIT_CONFIG_KEY_', 'GIT_CONFIG_VALUE_', 'npm_config_', 'NPM_CONFIG_'];

const validName = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isValidEnvName(name: string): boolean {
  return validName.test(name);
}

/** True for names that let a caller inject code or redirect loading (LD_PRELOAD, BASH_ENV, NODE_OPTIONS...). */
export function isDangerousEnv(name: string): boolean {
  return dangerousNames.has(name) || dangerousPrefixes.some((p) => name.startsWith(p)) || name.includes('%%');
}
