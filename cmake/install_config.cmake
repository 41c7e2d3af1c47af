# Run by `cmake --install` (install(CODE) in CMakeLists.txt): installs what
# depends on the prefix of this install, only known now (`cmake --install
# --prefix P` overrides the configured one): cascade.ini.example into
# SYSCONFDIR/cascade and the systemd unit, its paths filled in, into
# PREFIX/lib/systemd/system. In: SRC_DIR (the source tree), BIN_DIR, PREFIX.
# file(INSTALL) honours DESTDIR.
if(PREFIX STREQUAL "/usr")
  set(SYSCONFDIR "/etc")              # FHS: there is no /usr/etc
else()
  set(SYSCONFDIR "${PREFIX}/etc")
endif()
set(BINDIR "${PREFIX}/bin")
configure_file("${SRC_DIR}/packaging/cascade.service.in" "${BIN_DIR}/packaging/cascade.service" @ONLY)
file(INSTALL DESTINATION "${PREFIX}/lib/systemd/system" TYPE FILE FILES "${BIN_DIR}/packaging/cascade.service")
file(INSTALL DESTINATION "${SYSCONFDIR}/cascade" TYPE FILE FILES "${SRC_DIR}/cascade.ini.example")
