# wirehub_add_connector(<type> SOURCES <files…> [LIBRARIES <targets…>])
# Builds <type>.so against the SDK only: a MODULE without the lib prefix,
# hidden visibility (only the entry symbol is exported), into the shared
# connectors folder of the build tree, installed beside the other connectors.
function(wirehub_add_connector type)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  add_library(connector_${type} MODULE ${ARG_SOURCES})
  set_target_properties(connector_${type} PROPERTIES
    OUTPUT_NAME ${type}
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${WH_CONNECTOR_OUTPUT_DIR})
  target_link_libraries(connector_${type} PRIVATE wirehub_sdk ${ARG_LIBRARIES})
  install(TARGETS connector_${type} LIBRARY DESTINATION ${WH_INSTALL_CONNECTORS_DIR})
endfunction()
